"""Console entry point: ``ds``."""

from .app import main

if __name__ == "__main__":
    main()
