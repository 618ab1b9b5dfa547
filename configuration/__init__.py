"""Data only: model presets (``models/*.json``), pre-training recipes (``recipes/``) and accelerate launch
configs (``launch/``). Installed as ``modeling_tvtsv2.presets``; read it through
``modeling_tvtsv2.TVTSv2Config.from_preset`` (models) and ``modeling_tvtsv2.pretraining.arguments.recipe_directory()``
(recipes)."""
