console_failure_threshold = 3
