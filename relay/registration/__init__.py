"""Registration with AnyFormat: the stored subscription record and its signing secrets."""
