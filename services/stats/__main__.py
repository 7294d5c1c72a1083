from services.stats.main import main

main()
