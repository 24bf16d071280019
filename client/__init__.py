"""Docket client: the async library (DocketClient), key store, verified state and the docket CLI."""
