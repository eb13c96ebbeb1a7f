"""One subpackage or module per question an incident analyst asks; frames in, result objects out."""
