"""Metrics, reports and exports."""
