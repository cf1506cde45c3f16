"""Video record of the polling station (CEC pilot 4): frames -> privacy mask -> encoder -> segments ->
signed manifest.

Empty in this release: the scanner foundation does not use it. Its own issue builds it.
"""
