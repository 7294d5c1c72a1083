"""The statistics service: official figures in SQL, and the early warning's sink."""
