"""HTTP only: decode, call one handler, encode."""
