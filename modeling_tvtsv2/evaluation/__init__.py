"""Using a trained model out of the box: zero-shot evaluation, features, linear probe, search, metrics.

| module | what |
|---|---|
| `metrics` | retrieval recall (the original's tie handling), top-k accuracy, sort accuracy; plain numpy (+ the `evaluate` module folder `evaluate_metrics/`) |
| `embedding` | the embedding engine every module below uses: videos / windows -> embeddings (batched, decoded in DataLoader workers, unreadable videos raised or skipped), texts -> embeddings |
| `zero_shot` | zero-shot retrieval, classification and multiple choice over 🤗 Datasets; `training/run_eval.py` / `tvtsv2 eval` |
| `linear_probe` | CLIP's linear-probe protocol on frozen features (`--task linear-probe`) |
| `extract` | `tvtsv2 extract`: a corpus's embeddings written as a 🤗 Dataset, in resumable shards, over processes |
| `extract_streaming` | `tvtsv2 extract` (the command): `--streaming` reads only each job's part of a Hub / remote dataset |
| `search` | `tvtsv2 search`: text -> video (moment) search over an extracted index |
| `ann_index` | `tvtsv2 index`: a FAISS (HNSW / IVF-PQ) index beside an extracted index, used by `search` |
| `app` | `tvtsv2 app`: the Gradio app (search, thumbnails, player, zero-shot labels); a Hub Space folder |

May import: the Hub files, `modeling_tvtsv2.tools`, `modeling_tvtsv2.data` and each other; nothing from
`pretraining/` or the command line.
"""
