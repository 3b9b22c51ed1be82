"""Read side: views served straight from SQL, never through the write side."""
