#!/bin/bash
# test_redis_fleet on the `process` sandbox backend (the others run on the
# default local one): the fleet's behaviour does not depend on the backend.
SF_TEST_SANDBOX=process exec bash "$(dirname "$0")/test_redis_fleet.sh"
