from .run import main

raise SystemExit(main(prog="python -m modeling_tvtsv2.pretraining"))
