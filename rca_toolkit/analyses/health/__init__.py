"""The daily/weekly health report: counts per side, verdict OK / WATCH / ACT."""
