"""``python -m tether``: the tether CLI."""

from tether.cli.main import main

if __name__ == "__main__":
    main()
