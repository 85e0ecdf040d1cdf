"""Load tests, soaks and their reports."""
