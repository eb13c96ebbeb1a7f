"""Runbooks: the framework (checks computed from data, a verdict, a sign-off) and every check."""
