"""Before/after comparisons around a change, and change points that find the change."""
