"""course: the machinery that runs the fine-tuning course's notebooks in this repository.

Profiles and budgets (`config`), the course's models and data (`models`, `data`), results and plots,
and the tools: `run_notebooks`, `report`, `readme`, `benchmark`, `prepare`, `colab` and the sweeps.
The algorithms the notebooks teach live in the `ftkit` library and never import from here.
"""
