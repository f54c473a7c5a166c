"""Generic memory management on top of the page tables: vmalloc, ptdump, hotplug."""
