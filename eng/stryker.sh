#!/usr/bin/env bash
# Runs Stryker.NET mutation testing on one package and fails when its score falls below the <MutationScore> that the
# package's test project records (Polly's model: each package keeps its own number, and it only ratchets up).
#   eng/stryker.sh Scopes        # or Registry, Tasks, Channels, Threading, Actors
# The report lands in artifacts/stryker/<Package>/reports/mutation-report.html.
set -euo pipefail
cd "$(dirname "$0")/.."

package=${1:?usage: eng/stryker.sh <Package>}
project=tests/MicroIo.$package.Tests
score=$(dotnet msbuild "$project/MicroIo.$package.Tests.csproj" -getProperty:MutationScore)
score=${score%%.*}

dotnet tool restore
cd "$project"
dotnet stryker --config-file ../../eng/stryker-config.json --break-at "${score:-80}" --output "../../artifacts/stryker/$package"
