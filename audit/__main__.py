"""``python -m audit`` entry point."""

from audit.cli import main

if __name__ == "__main__":
    main()
