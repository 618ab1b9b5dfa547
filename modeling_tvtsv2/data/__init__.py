"""Corpora for pre-training and evaluation: their format, how samples are cut from them, and the tools that build
them.

| module | what |
|---|---|
| `schema` | the corpus format: columns and 🤗 Datasets features, loading a saved corpus, what a `video` cell points to |
| `transcript_windows` | a row's words with their times; the span of K transcript windows a sample is cut from |
| `skipping` | samples that cannot be built: the exception, the per-reason counter, the empty-batch marker |
| `collator` | `TVTSv2PretrainingCollator`: rows -> batches (decoding videos in DataLoader workers) |
| `corpus_mixing` | one corpus per optimiser step: `MixedCorpusBatchDataset`, `MixedCorpusBatchStream` |
| `subtitles` | `.srt` / `.vtt` / YT-Temporal JSON transcripts -> timed words and segments |
| `corpus_builders` | folders of videos + transcripts or caption metadata -> saved corpora with a build report |
| `corpus_output` | where a build writes, shard by shard: rows as they are made, per-shard reports, the merge |
| `corpus_shards` | Parquet / WebDataset shard writers; WebDataset tars made elsewhere read as corpus rows |
| `sharding` | a corpus tool's part of the work: `--shard_index/--num_shards`, launcher ranks, reports, merge claim |
| `demo_corpus` | the embedded demo corpus (generated clips of coloured shapes with timed transcripts) |
| `prepare_videos` | `tvtsv2 prepare-videos`: transcode videos once into training-ready files |

May import: the Hub files (`modeling_tvtsv2/*_tvtsv2.py`), `modeling_tvtsv2.tools` and each other; nothing from
`evaluation/`, `pretraining/` or the command line.
"""
