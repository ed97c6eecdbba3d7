"""Stage 2, selection and chunks: the chunk grid, row rules, front contract, chunk bars."""
