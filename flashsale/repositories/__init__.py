"""One module per table. Every function runs one SQL statement on the connection it is given and never commits:
the caller (the order logic) owns the transaction."""
