"""Booking attempts and their outcomes, and the reconciliation with the providers' records."""
