"""R1 CDS core: clinical services, cards and ports, free of web, queue, HTTP and Redis code."""
