"""Video record of the polling station (CEC pilot 4): frames -> privacy mask -> overlay -> encoder ->
segments -> chained, signed manifest (video.recorder composes the stages; video.verify checks a recording
from its directory alone). The service around it, over the polls day, is firmware.video.
"""
