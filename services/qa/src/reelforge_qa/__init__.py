"""Reelforge QA: gates and scores for segment videos."""

import logging

# transformers 5.25+ says at import that its image processors fall back to PIL without torchvision. Reelforge installs
# no torchvision (PyPI's does not load beside the pinned torch), so the fallback is the expected path, not news: only
# that import-machinery logger is quietened; every other transformers warning still reaches the log.
logging.getLogger("transformers.utils.import_utils").setLevel(logging.ERROR)
