"""Library side of the inspection tools (browse-dataset, vis-scheduler, vis-cam, analyze-logs, get-flops,
verify-dataset, analyze-results, confusion-matrix).

Each module is imported on demand by its command; importing this package imports nothing heavy.
"""
