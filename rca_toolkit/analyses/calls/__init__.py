"""One call, second by second: the span timeline and the findings on it."""
