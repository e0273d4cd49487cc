"""pydicom's warnings about the data it reads, kept out of every rpacs process's output.

pydicom warns of a value that does not fit its VR, or of a character set it does not know,
with the value in the message — as a Python warning (to stderr) and to its logger, which
the DICOM service writes to its log. A name typed into an IS, or a patient's name in a
malformed Specific Character Set, would reach the terminal and the logs. rpacs judges values
itself (the review's flags, the export's scan) and never shows an original one; a file it
cannot read is rejected with a reason of its own. So here: pydicom's checks of values on
reading are off, its warnings are not shown, and its log records stay in its own logger
(which has no handler). Code that needs a warning (``rpacs.deid.io`` telling a truncated
file) still records it inside :func:`warnings.catch_warnings`.

Every module of rpacs that imports pydicom imports this one; ``tests/test_no_phi_in_output.py``
checks that.
"""

import logging
import warnings

from pydicom import config

config.settings.reading_validation_mode = config.IGNORE
warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
logging.getLogger("pydicom").propagate = False
