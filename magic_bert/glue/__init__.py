"""GLUE (and user-data) fine-tuning: task records, metrics, reports, and the fine-tuning loop."""
