/*
 * Stand-in for the Pyxis SPANK plugin, used only by the hpc.pcluster sandbox.
 *
 * AWS ParallelCluster AMIs (>= 3.11) ship Pyxis at
 * /usr/local/lib/slurm/spank_pyxis.so, disabled until plugstack.conf includes
 * it. The sandbox installs this file at that path so that the roles which
 * enable Pyxis (copying the example plugstack.conf and pyxis.conf) can be run
 * and checked against a real slurmctld/slurmd: Slurm loads this plugin, which
 * accepts the same plugin arguments (runtime_path=...) and registers one
 * option, --sandbox-pyxis-standin. It deliberately does NOT register
 * --container-image: nothing can mistake it for Pyxis, and a job asking for a
 * container fails plainly instead of pretending to run in one.
 */
#include <string.h>
#include <slurm/spank.h>

SPANK_PLUGIN(sandbox_pyxis_standin, 1);

static int standin_option_cb(int val, const char *optarg, int remote)
{
    (void)val;
    (void)optarg;
    (void)remote;
    return 0;
}

struct spank_option spank_options[] = {
    {"sandbox-pyxis-standin", NULL,
     "[hpc.pcluster sandbox] stand-in for the Pyxis plugin; does nothing", 0, 0,
     standin_option_cb},
    SPANK_OPTIONS_TABLE_END};

int slurm_spank_init(spank_t sp, int ac, char **av)
{
    int i;

    (void)sp;
    for (i = 0; i < ac; i++) {
        if (strncmp(av[i], "runtime_path=", 13) != 0 && strncmp(av[i], "execute_entrypoint=", 19) != 0 &&
            strncmp(av[i], "container_scope=", 16) != 0 && strncmp(av[i], "sbatch_support=", 15) != 0 &&
            strncmp(av[i], "container_image_save=", 21) != 0 && strncmp(av[i], "importer=", 9) != 0) {
            slurm_error("spank_pyxis (sandbox stand-in): unknown argument %s", av[i]);
            return -1;
        }
    }
    return 0;
}
