"""The geo language front end: source files, the grammar, the AST and diagnostics."""
