"""The operator console at /console/: server-rendered pages for people, served with
everything they load by the service itself (README, "Console"; CONTRACT.md, "Operator
console")."""
