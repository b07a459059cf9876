"""ftkit: the small library behind the fine-tuning course.

One module per idea: `config` (profiles and model sources), `models`, `data`, `params`, `memory`,
`train`, `results`, `plots`. Import the module you need; nothing heavy happens at import time.
"""

__version__ = "0.1.0"
