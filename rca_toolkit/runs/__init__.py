"""Running notebooks: papermill runner, kernel-side helpers, rendering, run folders, index,
scheduling and plots."""
