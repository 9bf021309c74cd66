from mpc_gateway.cli import main

main()
