"""``python -m pressrun``: the same command line as the ``pressrun`` script."""

from pressrun.cli import main

if __name__ == "__main__":
    main(prog_name="pressrun")
