"""The Hydra configs of conf/: their schema, checks, resolvers, and a resumed run's config."""
