"""Listings of the generic hotplug flow: ``mm/memory_hotplug.c`` and ``drivers/base``.

Read against the v5.3 (5.3.1), v5.4 and v5.7 (5.7.14) trees. ``try_remove_memory()`` has
one listing per call order (kernel-facts 4.2), ``unregister_memory_block_under_nodes()``
one for v5.3's pfn walk and one for v5.4's stored nid (commit 60bb462fc7ad).
"""

from __future__ import annotations

from mmkit.kernel_source._listing import source

__all__ = ["ALIASES", "LISTINGS"]

ALIASES: dict[str, str] = {}

_MH = "mm/memory_hotplug.c"

LISTINGS = [
    source(
        "add_memory",
        "v5.4",
        _MH,
        "Same in v5.3-v5.7. The model takes the locks as steps a scheduler can hold back.",
        """
        int add_memory(nid, start, size)
        {
            lock_device_hotplug();  @@ lock(device_hotplug_lock)
            rc = __add_memory(nid, start, size);
            unlock_device_hotplug();  @@ unlock(device_hotplug_lock)
            return rc;
        }
        """,
    ),
    source(
        "__add_memory",
        "v5.4",
        _MH,
        "The resource is the range's 'System RAM' entry in /proc/iomem.",
        """
        int __add_memory(nid, start, size)  /* device_hotplug_lock held */
        {
            res = register_memory_resource(start, size);  @@ register_memory_resource({x}, {x})
            if (IS_ERR(res))
                return PTR_ERR(res);        /* -EEXIST: overlaps RAM */
            ret = add_memory_resource(nid, res);
            if (ret < 0)
                release_memory_resource(res);
            return ret;
        }
        """,
    ),
    source(
        "add_memory_resource",
        "v5.4",
        _MH,
        "v5.7 passes mhp_params instead of restrictions. The model runs "
        "__try_online_node() as one step (__register_one_node) and attributes the "
        "release of the resource on error (done by __add_memory) to this function.",
        """
        int add_memory_resource(nid, res)
        {
            check_hotplug_memory_range(start, size);   /* block aligned */
            mem_hotplug_begin();  @@ write_lock(mem_hotplug_lock)
            memblock_add_node(start, size, nid);  @@ memblock_add_node({x}, {x}, {})
            new_node = __try_online_node(nid, start, false);
            ret = arch_add_memory(nid, start, size, &restrictions);
            if (ret < 0)
                goto error;
            create_memory_block_devices(start, size);
            if (new_node)
                BUG_ON(__register_one_node(nid));  @@ __register_one_node({})
            ret = link_mem_sections(nid, start_pfn, end_pfn);
            BUG_ON(ret);              /* -EEXIST: a stale node link */
            firmware_map_add_hotplug(start, start + size, "System RAM");
            mem_hotplug_done();  @@ unlock(mem_hotplug_lock)
            if (memhp_auto_online)
                walk_memory_blocks(start, size, NULL, online_memory_block);
            return ret;
        error:
            memblock_remove(start, size);  @@ memblock_remove({x}, {x})
            mem_hotplug_done();
            return ret;     /* __add_memory: release_memory_resource() */
            @@ release_memory_resource({x}, {x})
        }
        """,
    ),
    source(
        "__add_pages",
        "v5.4",
        _MH,
        "The model populates every section's memmap first (vmemmap_populate steps, "
        "from arch_add_memory) and marks the sections present in one step.",
        """
        int __add_pages(nid, pfn, nr_pages, restrictions)
        {
            for (; pfn < end_pfn; pfn += cur_nr_pages) {   /* per section */
                /* section_activate(): vmemmap_populate() its memmap */
                sparse_add_section(nid, pfn, cur_nr_pages, altmap);
                    section_mark_present(ms);
                    @@ sparse_add_section() x {}: section_mark_present(sections {}..{})
            }
            return 0;
        }
        """,
    ),
    source(
        "create_memory_block_devices",
        "v5.4",
        "drivers/base/memory.c",
        "One memory block per section on arm64 (1 GiB up to v5.7).",
        """
        int create_memory_block_devices(start, size)
        {
            mutex_lock(&mem_sysfs_mutex);
            for (id = first_block; id != end_block; id++) {
                /* registers /sys/devices/system/memory/memoryN */
                init_memory_block(&mem, id, MEM_OFFLINE);  @@ register_memory(memory{})
                mem->section_count = sections_per_block;
            }
            mutex_unlock(&mem_sysfs_mutex);
            return 0;
        }
        """,
    ),
    source(
        "register_mem_sect_under_node",
        "v5.4",
        "drivers/base/node.c",
        "The model makes the two links as two steps; a link already present fails with "
        "-EEXIST and add_memory_resource() hits BUG_ON(ret).",
        """
        int register_mem_sect_under_node(mem_blk, nid)
        {
            for (pfn = start_pfn; pfn <= end_pfn; pfn++) {
                if (!pfn_present(pfn))
                    continue;         /* skip an absent section */
                mem_blk->nid = nid;
                ret = sysfs_create_link_nowarn(nodeN, memoryB);
                @@ sysfs_create_link_nowarn(node{}, memory{}){*}
                if (ret)
                    return ret;       /* -EEXIST */
                return sysfs_create_link_nowarn(memoryB, nodeN);
                @@ sysfs_create_link_nowarn(memory{}, node{}){*}
            }
            return 0;
        }
        """,
    ),
    source(
        "online_pages",
        "v5.4",
        _MH,
        "Onlining is one step in the model: the zone and the buddy allocator are not simulated.",
        """
        int online_pages(pfn, nr_pages, online_type)
        {
            mem_hotplug_begin();  @@ write_lock(mem_hotplug_lock)
            zone = zone_for_pfn_range(online_type, nid, pfn, nr_pages);
            move_pfn_range_to_zone(zone, pfn, nr_pages, NULL);
            memory_notify(MEM_GOING_ONLINE, &arg);
            online_pages_range(...);     /* pages go to the buddy */
            memory_notify(MEM_ONLINE, &arg);  @@ memory{}: offline -> online ({})
            mem_hotplug_done();  @@ unlock(mem_hotplug_lock)
            return 0;
        }
        """,
    ),
    source(
        "offline_pages",
        "v5.4",
        _MH,
        "offline_pages() calls __offline_pages(). Migration is one fact per block "
        "(unmovable allocations or not): isolation first (-EBUSY), then the notifiers; "
        "the policy's boot-memory notifier (v5.7) refuses early sections (-EPERM).",
        """
        static int __offline_pages(start_pfn, end_pfn)
        {
            mem_hotplug_begin();  @@ write_lock(mem_hotplug_lock)
            start_isolate_page_range(start_pfn, end_pfn, ...);
            memory_notify(MEM_GOING_OFFLINE, &arg);  @@ memory{}: MEM_GOING_OFFLINE
            do {
                scan_movable_pages(); do_migrate_range();
            } while (!all pages isolated);  /* -EBUSY if stuck */
            walk_system_ram_range(..., offline_isolated_pages_cb);
            memory_notify(MEM_OFFLINE, &arg);  @@ memory{}: MEM_OFFLINE
            mem_hotplug_done();  @@ unlock(mem_hotplug_lock)
            return 0;
        }
        """,
    ),
    source(
        "remove_memory",
        "v5.4",
        _MH,
        "Same in v5.3-v5.7.",
        """
        int remove_memory(nid, start, size)
        {
            lock_device_hotplug();  @@ lock(device_hotplug_lock)
            rc = try_remove_memory(nid, start, size);
            unlock_device_hotplug();  @@ unlock(device_hotplug_lock)
            return rc;
        }
        """,
    ),
    source(
        "try_remove_memory",
        "v5.7",
        _MH,
        "v5.7 (and v6.1 alike): the devices go before mem_hotplug_begin() "
        "(D. Hildenbrand), memblock after arch_remove_memory (32d1fe8fcb32).",
        """
        static int try_remove_memory(nid, start, size)
        {
            BUG_ON(check_hotplug_memory_range(start, size));
            rc = walk_memory_blocks(start, size, NULL,
                                    check_memblock_offlined_cb);
            if (rc)
                goto done;            /* -EBUSY: a block is online */
            firmware_map_remove(start, start + size, "System RAM");
            remove_memory_block_devices(start, size);
            mem_hotplug_begin();  @@ write_lock(mem_hotplug_lock)
            arch_remove_memory(nid, start, size, NULL);
            memblock_free(start, size);  @@ memblock_free({x}, {x})
            memblock_remove(start, size);  @@ memblock_remove({x}, {x})
            __release_memory_resource(start, size);  @@ __release_memory_resource({x}, {x})
            try_offline_node(nid);
        done:
            mem_hotplug_done();  @@ unlock(mem_hotplug_lock)
            return rc;
        }
        """,
        kernels=("v5.7", "v6.1"),
    ),
    source(
        "try_remove_memory",
        "v5.5",
        _MH,
        "Patch 1/3 as merged for v5.5 (32d1fe8fcb32): memblock ranges go last, in "
        "reverse order of add.",
        """
        static int try_remove_memory(nid, start, size)
        {
            BUG_ON(check_hotplug_memory_range(start, size));
            mem_hotplug_begin();  @@ write_lock(mem_hotplug_lock)
            rc = walk_memory_blocks(start, size, NULL,
                                    check_memblock_offlined_cb);
            if (rc)
                goto done;            /* -EBUSY: a block is online */
            firmware_map_remove(start, start + size, "System RAM");
            remove_memory_block_devices(start, size);
            arch_remove_memory(nid, start, size, NULL);
            memblock_free(start, size);  @@ memblock_free({x}, {x})
            memblock_remove(start, size);  @@ memblock_remove({x}, {x})
            __release_memory_resource(start, size);  @@ __release_memory_resource({x}, {x})
            try_offline_node(nid);
        done:
            mem_hotplug_done();  @@ unlock(mem_hotplug_lock)
            return rc;
        }
        """,
        kernels=("v5.5",),
    ),
    source(
        "try_remove_memory",
        "v5.4",
        _MH,
        "v5.3 and v5.4 alike: memblock is emptied before the devices go, so v5.3's "
        "get_nid_for_pfn() finds no node (patch 1/3's bug).",
        """
        static int try_remove_memory(nid, start, size)
        {
            BUG_ON(check_hotplug_memory_range(start, size));
            mem_hotplug_begin();  @@ write_lock(mem_hotplug_lock)
            rc = walk_memory_blocks(start, size, NULL,
                                    check_memblock_offlined_cb);
            if (rc)
                goto done;            /* -EBUSY: a block is online */
            firmware_map_remove(start, start + size, "System RAM");
            memblock_free(start, size);  @@ memblock_free({x}, {x})
            memblock_remove(start, size);  @@ memblock_remove({x}, {x})
            remove_memory_block_devices(start, size);
            arch_remove_memory(nid, start, size, NULL);
            __release_memory_resource(start, size);  @@ __release_memory_resource({x}, {x})
            try_offline_node(nid);
        done:
            mem_hotplug_done();  @@ unlock(mem_hotplug_lock)
            return rc;
        }
        """,
        kernels=("v5.3", "v5.4"),
    ),
    source(
        "remove_memory_block_devices",
        "v5.4",
        "drivers/base/memory.c",
        "Same in v5.3-v5.7.",
        """
        void remove_memory_block_devices(start, size)
        {
            mutex_lock(&mem_sysfs_mutex);
            for (id = first_block; id != end_block; id++) {
                mem = find_memory_block_by_id(id);
                mem->section_count = 0;
                unregister_memory_block_under_nodes(mem);
                unregister_memory(mem);  @@ unregister_memory(memory{})
            }
            mutex_unlock(&mem_sysfs_mutex);
        }
        """,
    ),
    source(
        "unregister_memory_block_under_nodes",
        "v5.4",
        "drivers/base/node.c",
        "v5.4 on (60bb462fc7ad): unlink by the nid stored at link time, no pfn walk.",
        """
        void unregister_memory_block_under_nodes(mem_blk)
        {
            if (mem_blk->nid == NUMA_NO_NODE)
                return;
            sysfs_remove_link(nodeN, memoryB);  @@ sysfs_remove_link(node{}, memory{})
            sysfs_remove_link(memoryB, nodeN);  @@ sysfs_remove_link(memory{}, node{})
        }
        """,
        kernels=("v5.4", "v5.5", "v5.7", "v6.1"),
    ),
    source(
        "unregister_memory_block_under_nodes",
        "v5.3",
        "drivers/base/node.c",
        "A block is one section on arm64, so the walk is one pfn. get_nid_for_pfn() "
        "is -1 once pfn_valid() (memblock_is_map_memory) says no: no link is removed.",
        """
        void unregister_memory_block_under_nodes(mem_blk)
        {
            nodes_clear(unlinked_nodes);
            for (pfn = section_nr_to_pfn(first section);
                 pfn <= section_nr_to_pfn(last section); pfn++) {
                nid = get_nid_for_pfn(pfn);  @@ nid = get_nid_for_pfn({x}){*}
                if (nid < 0 || !node_online(nid))
                    continue;         /* -1 unless pfn_valid(pfn) */
                if (node_test_and_set(nid, unlinked_nodes))
                    continue;
                sysfs_remove_link(nodeN, memoryB);  @@ sysfs_remove_link(node{}, memory{})
                sysfs_remove_link(memoryB, nodeN);  @@ sysfs_remove_link(memory{}, node{})
            }
        }
        """,
        kernels=("v5.3",),
    ),
]
