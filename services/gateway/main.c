/* cmq-gateway: main.c only wires (config, gateway, run). */
#include "gateway.h"
#include "status.h"

int main(int argc, char **argv)
{
    struct gateway_cfg cfg = {0};
    int rc = svc_main_args(argc, argv, "gateway", gateway_config_keys, gateway_config_n_keys,
                           &cfg, &cfg.common);
    if (rc >= 0)
        return rc;
    struct gateway *gw;
    if (gateway_open(&cfg, &gw) != CMQ_OK)
        return 1;
    rc = gateway_run(gw);
    gateway_close(gw);
    return rc;
}
