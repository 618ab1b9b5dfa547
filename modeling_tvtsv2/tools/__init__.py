"""What the tools (and the trainer) share: argument parsing, the output-folder policy, model loading, the package's
logger, the Hub export.

| module | what |
|---|---|
| `arguments` | the one way tools parse their arguments: `HfArgumentParser` over each tool's dataclass, `--a_b` and `--a-b`, JSON/YAML argument files under typed flags, one-line errors with exit code 2 (also the typed-flag detection and recipe-file reading of pre-training) |
| `output_folders` | the one policy for output folders: refuse a non-empty one unless `--overwrite`, never write into or over an input, build beside and move into place only when complete |
| `package_logging` | the package's logger: every module logs below it; tools set its level here, never the root logger's |
| `model_loading` | a model and its processor from a folder or Hub id (the default processor when a folder has none) |
| `hub_export` | a Hub-ready model folder: weights, processor, flat remote-code files, pipelines, model card with eval results (`tvtsv2 export`, `--hub`, `--push_to_hub`) |

May import: the Hub files (`modeling_tvtsv2/*_tvtsv2.py`) and each other; nothing from `data/`, `evaluation/`,
`pretraining/` or the command line (they all build on this package).
"""
