from services.objection.main import main

main()
