"""The video service (CEC pilot 4): the room camera's recorder over the polls day, its own store (the
recording directory: segments + signed manifest), its own log, and the video record (Art. 40)."""
