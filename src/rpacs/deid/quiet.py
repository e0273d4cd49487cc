"""pydicom's checks of values as it reads them, turned off in every rpacs process.

pydicom warns of a value that does not fit its VR with the value in the message, to stderr
and to its logger (which the DICOM service writes to its log): a name typed into an IS
would reach the terminal and the logs. rpacs judges values itself — the review's flags,
the export's scan — and never shows an original one. Every module of rpacs that imports
pydicom imports this one first; ``tests/test_no_phi_in_output.py`` checks that.
"""

from pydicom import config

config.settings.reading_validation_mode = config.IGNORE
