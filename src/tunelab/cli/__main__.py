"""`python -m tunelab.cli`: the `tunelab` command."""

from tunelab.cli.commands import main

if __name__ == "__main__":
    main()
