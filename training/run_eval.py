#!/usr/bin/env python
"""Zero-shot evaluation of a TVTSv2 model on a 🤗 dataset saved to disk; writes the metrics as JSON.

Tasks (the original TVTSv2 protocols, see `modeling_tvtsv2.evaluation`):

    # text <-> video retrieval: rows = videos, `caption` = a caption or a list of captions
    python training/run_eval.py --task retrieval --model MODEL_DIR --dataset msrvtt_1ka --output results/msrvtt.json

    # zero-shot classification: `label` = ClassLabel / string / int (+ --class-names); prompt templates averaged
    python training/run_eval.py --task classification --model MODEL_DIR --dataset hmdb51_split1 \
        --output results/hmdb51.json [--template "a person {}" --template "a video of a person {}"]

    # multiple choice per video (SSv2-MC): `options` = list of sentences, `answer` = index
    python training/run_eval.py --task multiple-choice --model MODEL_DIR --dataset ssv2_mc --output results/ssv2mc.json

    # linear probe on frozen features (CLIP's protocol; the original code has none): `tvtsv2 extract` outputs of
    # each split with the label kept, or --model + --dataset (a DatasetDict with train/test[/validation] splits)
    python training/run_eval.py --task linear-probe --train-features feats/train --test-features feats/test \
        --output results/hmdb51-probe.json [--validation-features feats/validation]

The JSON files feed the model card:
    tvtsv2 export --model MODEL_DIR --output HUB_DIR --eval-results results/msrvtt.json
"""

import sys

from modeling_tvtsv2.evaluation.zero_shot import EvalDatasetError, main


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except EvalDatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
