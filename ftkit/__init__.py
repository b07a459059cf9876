"""ftkit: the small library behind the fine-tuning course.

One module per idea (`params`, `quant`, `lora`, `train`, `reward_model`, `ppo`, ...), each working on any PyTorch or
Hugging Face model, on any device. The course's own machinery (profiles, its models and data, results,
plots and the tools that run the notebooks) lives beside it in the `course` package.
Import the module you need; nothing heavy happens at import time.
"""

__version__ = "0.1.0"
