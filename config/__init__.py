"""Configuration as data: the election definition format, device settings, samples and test keys."""
