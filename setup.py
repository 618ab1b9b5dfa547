"""Packaging for TVTSv2 in 🤗 Transformers.

Only one import package is installed: ``modeling_tvtsv2``. The data-only ``configuration/`` folder (model
presets, pre-training recipes, launch configs) is shipped inside it as ``modeling_tvtsv2.presets`` so that
``TVTSv2Config.from_preset(...)`` reads the very same files the repository shows (one source of truth).
``processing/`` and ``training/`` are thin entry-point scripts, run from a checkout.
"""

from setuptools import setup

setup(
    name="tvtsv2",
    version="0.1.0",
    description="TVTSv2 (Zeng et al., 2023) video-text models for Hugging Face transformers",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=[
        "modeling_tvtsv2",
        "modeling_tvtsv2.data",
        "modeling_tvtsv2.evaluation",
        "modeling_tvtsv2.pretraining",
        "modeling_tvtsv2.tools",
        "modeling_tvtsv2.presets",
    ],
    package_dir={"modeling_tvtsv2": "modeling_tvtsv2", "modeling_tvtsv2.presets": "configuration"},
    package_data={
        "modeling_tvtsv2": ["*.txt.gz"],
        "modeling_tvtsv2.evaluation": ["evaluate_metrics/*/*.py", "evaluate_metrics/*/*.md"],
        "modeling_tvtsv2.presets": ["*/*.json", "*/*.yaml", "*/*.md"],
    },
    install_requires=[
        "torch>=2.4,<2.15",
        "transformers>=5.24,<6",
        "accelerate>=1.10,<2",
        "datasets>=4.0,<6",
        "fsspec[http]",  # remote videos (http(s)://, hf://, ...): range reads; [http] brings aiohttp
        "evaluate>=0.4.6,<0.5",
        "av>=14,<20",
        "peft>=0.17,<1",
        "safetensors>=0.4",
        "numpy>=1.26",
        "huggingface_hub>=1.0",
        "tqdm",
        "ftfy>=6.1",
        "regex",  # the original tokenizer's whitespace rule (`\s` differs from `re`'s)
    ],
    extras_require={
        # corpus preparation from subtitle files
        "train": ["srt>=3.5,<4", "webvtt-py>=0.5,<1"],
        # `tvtsv2 app` (Gradio UI) and its browser test (selenium drives the system's chromium + chromium-driver)
        "app": ["gradio>=5,<7", "pillow>=10"],
        # `tvtsv2 index`: approximate nearest-neighbour search
        "search": ["faiss-cpu>=1.8,<2"],
        "browser-test": ["selenium>=4.20,<5"],
        # tests: Pillow is only the reference for the NEAREST-resize parity test
        "dev": ["pytest>=8", "pytest-timeout>=2", "pillow>=10", "srt>=3.5,<4", "webvtt-py>=0.5,<1"],
    },
    entry_points={"console_scripts": ["tvtsv2=modeling_tvtsv2.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
