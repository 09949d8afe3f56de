"""Pure judgements over gathered facts: what is fine, what warns, what blocks."""
