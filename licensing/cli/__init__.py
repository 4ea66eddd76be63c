"""The admin CLI (`licensing`): the grammar in parser, errors and exit codes in main, one module per command
family, output in output (JSON/CSV vocabulary, tables that fit the terminal) and the *_render modules."""
