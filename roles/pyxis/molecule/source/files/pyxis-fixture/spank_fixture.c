/*
 * Test fixture for the hpc.pcluster.pyxis role's source build: a minimal
 * SPANK plugin with the same build interface as Pyxis (make with CPPFLAGS
 * pointing at the Slurm headers produces spank_pyxis.so). It registers
 * --pyxis-build-fixture and is NOT Pyxis.
 */
#include <stddef.h>

#include <slurm/spank.h>

SPANK_PLUGIN(pyxis_build_fixture, 1);

struct spank_option spank_options[] = {
    {"pyxis-build-fixture", NULL, "[hpc.pcluster test fixture] does nothing", 0, 0, NULL},
    SPANK_OPTIONS_TABLE_END};

int slurm_spank_init(spank_t sp, int ac, char **av)
{
    (void)sp;
    (void)ac;
    (void)av;
    return 0;
}
