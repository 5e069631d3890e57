"""The mix job: sample the weighted mixture of curated documents into Arrow token shards. Modules: rates (the
mixing rates, no Beam), rows (token rows and their shuffle), job (the Beam pipeline), stage."""
